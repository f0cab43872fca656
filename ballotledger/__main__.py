from ballotledger.cli import main

main()
