import sys
sys.path.insert(0, '/work/main')


def main():
    import training.cv as cv
    from training.config import load_conf
    conf = load_conf('/work/main/conf/train.yaml')
    cv.run_recipe(['/work/shared/corpora'], conf, '/work/main/.cache/recipe-out', progress=True)


if __name__ == "__main__":
    main()
