from xraytrack.cli import main

main()
