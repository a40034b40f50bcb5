from smartpractice.cli import main

main()
