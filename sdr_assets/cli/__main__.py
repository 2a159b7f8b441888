"""``python -m sdr_assets.cli``: the same as the ``sdr-assets`` command."""

from sdr_assets.cli import main

main()
