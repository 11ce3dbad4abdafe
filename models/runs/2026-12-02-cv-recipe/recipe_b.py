"""Second process: the recipe's final and leave-one-corpus-out runs, in parallel with the folds."""
import sys
sys.path.insert(0, '/work/main')


def main():
    import json
    from pathlib import Path
    import training.cv as cv
    from training.config import load_conf
    from training.train import json_default
    from ser_lib.features import FeatureConfig
    from ser_lib.speech import SpeechConfig
    conf = load_conf('/work/main/conf/train.yaml')
    out = Path('/work/main/.cache/recipe-b')
    folds = cv.load_folds(cv.FOLDS_PATH)
    fcfg, scfg = FeatureConfig(), SpeechConfig()
    pool = cv.extract(['/work/shared/corpora'], conf, fcfg, scfg, progress=False)
    epochs = int(conf['train']['epochs'])  # select.checkpoint: last -> every fold's best epoch is the last
    r = cv.train_run('final', pool, folds, conf, fcfg, scfg, out / 'final-stage', epochs=epochs, temperature=1.0)
    (out / 'final.json').write_text(json.dumps({k: v for k, v in r.items() if k != 'history'}, default=json_default))
    r = cv.train_run('loco', pool, folds, conf, fcfg, scfg, out / 'cv' / 'loco')
    rec = {**{k: v for k, v in r.items() if k not in ('scores', 'history')},
           'turev_4class': r['scores']['four_class']['turev'], 'scores': cv.compact_scores(r['scores'])}
    (out / 'loco.json').write_text(json.dumps(rec, default=json_default))


if __name__ == "__main__":
    main()
