from lobes.evaluation.compare import main

if __name__ == "__main__":
    main()
