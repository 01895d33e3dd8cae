from polystream.cli import main

main()
