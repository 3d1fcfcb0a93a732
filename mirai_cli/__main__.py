from mirai_cli.cli.app import main

main()
