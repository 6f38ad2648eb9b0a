from energaizer.cli.app import main

main()
