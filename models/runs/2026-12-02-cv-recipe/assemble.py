"""Merge process A (CV folds, .cache/recipe-out) and B (final + LOCO, .cache/recipe-b), then recalibrate."""
import sys
sys.path.insert(0, '/work/main')


def main():
    import json, shutil
    from pathlib import Path
    import training.cv as cv
    a = Path('/work/main/.cache/recipe-out')
    b = Path('/work/main/.cache/recipe-b')
    record = json.loads((a / 'cv.json').read_text())
    assert 'cv' in record and len(record['cv']['runs']) == 6, 'CV folds not finished'
    record['loco'] = json.loads((b / 'loco.json').read_text())
    if (a / 'cv' / 'loco').exists():
        shutil.rmtree(a / 'cv' / 'loco')
    shutil.copytree(b / 'cv' / 'loco', a / 'cv' / 'loco')
    record['loco']['dir'] = str(a / 'cv' / 'loco')
    epochs = int(record['conf']['train']['epochs'])
    import numpy as np
    temp = float(np.median([r['temperature'] for r in record['cv']['runs']]))
    stage = a / '.final-stage'
    if stage.exists():
        shutil.rmtree(stage)
    shutil.copytree(b / 'final-stage', stage)
    cv.publish_final(a, stage, record, epochs, temp)
    record['final'] = {k: v for k, v in json.loads((b / 'final.json').read_text()).items() if k != 'dir'}
    record['note'] = ('folds (process A) and the LOCO and final runs (process B) ran as two processes of the same '
                      'code and configuration, in parallel, to fit the session; ser train runs them in one')
    cv.write_record(a / 'cv.json', record)
    rec = cv.recalibrate(a, ['/work/shared/corpora'], progress=False)
    print(cv.format_cv_table(rec['cv']['table'], rec['loco']['turev_4class']))


if __name__ == "__main__":
    main()
