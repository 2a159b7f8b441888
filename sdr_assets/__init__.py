"""sdr_assets."""
