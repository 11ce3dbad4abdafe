"""White noise alone in files of 0.5-3 s: flagged as speech under 2 s, before and after the detector change
(the padding of a window past the end of a short file is its noise floor). python <this> from the repo root"""
import numpy as np
from dataclasses import replace
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, is_speech
SR=8000; CFG=FeatureConfig(); rng=np.random.default_rng(1)
for dur in (0.5, 0.75, 1.5, 3.0):
    y=(rng.standard_normal(int(dur*SR))*0.05).astype(np.float32)
    f,_=window_features(y,CFG,1.0)
    print(dur, [(k,r,is_speech(f,replace(SpeechConfig(),flux_skip_bands=k,flux_total_range_db=r)).astype(int).tolist()) for k,r in ((0,1000),(3,1000),(3,40))])
