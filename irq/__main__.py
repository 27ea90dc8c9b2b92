from irq.cli import main

main()
