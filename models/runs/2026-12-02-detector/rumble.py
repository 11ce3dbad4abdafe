"""A 0.75 s file of 60 Hz hum (or 50 Hz harmonics) at -20 dBFS RMS, with noise at None/-90/-70/-50 dBFS,
alone and with a speech-like word at -45 dBFS: flags for skip 0 / skip 3 and total floor R 60/50/40.
Run from the repository root: python models/runs/2026-12-02-detector/rumble.py"""
import numpy as np
from dataclasses import replace
from ser_lib.features import FeatureConfig, window_features
from ser_lib.speech import SpeechConfig, is_speech, spectral_change, active_frames
from ser_lib.synth import speech_like, silence
SR=8000; CFG=FeatureConfig()
rng=np.random.default_rng(11)
n=int(0.75*SR); t=np.arange(n)/SR
def flags(y):
    f,_=window_features(y.astype(np.float32),CFG,1.0); a=active_frames(f)
    return [(k, is_speech(f,replace(SpeechConfig(),flux_skip_bands=k)).astype(int).tolist(), np.round(spectral_change(f,a,replace(SpeechConfig(),flux_skip_bands=k),1),2).tolist()) for k in (0,3)] + [(k,r, is_speech(f,replace(SpeechConfig(),flux_skip_bands=k,flux_total_range_db=r)).astype(int).tolist()) for k in (3,) for r in (60,50,40)]
for hum in ("sine60", "hum50"):
    h = np.sin(2*np.pi*60*t) if hum=="sine60" else sum(np.sin(2*np.pi*50*k*t)/k for k in range(1,9))
    h = h/np.sqrt(np.mean(h**2))*10**(-20/20)
    for noise_db in (None, -90, -70, -50):
        nz = 0 if noise_db is None else rng.standard_normal(n)*10**(noise_db/20)
        print(hum, noise_db, "hum only", flags(h+nz))
        print(hum, noise_db, "hum+speech", flags(h+nz+speech_like(0.75,SR,rng,-45)))
