from maestromotif.kit.runner import main

main()
