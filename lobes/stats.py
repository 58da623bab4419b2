from lobes.evaluation.score_stats import main

if __name__ == "__main__":
    main()
