"""`python -m cfxl` runs the command line."""

from cfxl.cli import main

main()
