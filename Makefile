# Every target bootstraps its own .venv from scratch (only the package registries are needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test data train ship bench speed eval clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet torch==2.13.0
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m patchvsr.demo

test: $(STAMP)
	$(PY) -m pytest

# Training data (photos from Debian packages + scikit-image, synthetic camera motion): ~2 GB in data/.
data: $(STAMP)
	$(VENV)/bin/patchvsr data --out data

# Training of the embedded model, as shipped: stage 1 (base), stage 2 (adapter + LoRA; its last 2000 steps with a
# linear learning-rate decay to 0), then a stage-2 fine-tune from that model with the temporal-consistency loss
# term (--init, --temporal-weight; its last 1000 steps decaying). About 25 + 157 + 44 minutes on one core of the
# 2-core development machine. RESUME=--resume continues from the checkpoints (e.g. after a crash); training is
# deterministic, so a resumed run matches a straight one.
BASE_STEPS ?= 1560
ADAPTER_STEPS ?= 8176
ADAPTER_DECAY ?= 2000
TEMPORAL_STEPS ?= 2000
TEMPORAL_DECAY ?= 1000
train: $(STAMP)
	test -f data/manifest.json || $(MAKE) data
	$(VENV)/bin/patchvsr train base --data data --out runs/tiny_base --steps $(BASE_STEPS) --threads 1 \
		--lr 5e-4 --checkpoint-minutes 5 $(RESUME)
	$(VENV)/bin/patchvsr train adapter --data data --out runs/tiny_adapter --base runs/tiny_base/model \
		--steps $(ADAPTER_STEPS) --decay-steps $(ADAPTER_DECAY) --threads 1 --lr 6e-4 --warmup-steps 50 \
		--checkpoint-minutes 8 --val-every 150 $(RESUME)
	$(VENV)/bin/patchvsr train adapter --data data --out runs/tiny_temporal --base runs/tiny_base/model \
		--init runs/tiny_adapter/model --temporal-weight 1 --steps $(TEMPORAL_STEPS) \
		--decay-steps $(TEMPORAL_DECAY) --threads 1 --lr 2e-4 --warmup-steps 20 --checkpoint-minutes 8 \
		--val-every 250 $(RESUME)

# Copy the trained model into the package (float16, < 30 MB) as `--model tiny`, with the model card notes.
ship: $(STAMP)
	$(PY) -m patchvsr.train.ship runs/tiny_temporal/model --notes docs/tiny_model_notes.md

# Quality tables of docs/RESULTS.md (public evaluation set, x4): all methods on the first 60 frames, then the
# tiny model's sampling settings on 24 frames (bigbuckbunny: its 640x360 centre). About 40 minutes on 2 cores.
TINY_SETTINGS := bicubic,lanczos,tiny,tiny:temporal_radius=0,tiny:clip_frames=4:temporal_radius=2,tiny:steps=4,tiny:steps=4:t0=0.5
eval: $(STAMP)
	$(PY) -m patchvsr.eval.realesrgan fetch
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bigbuckbunny bikes carphone_pristine --scale 4 --frames 60 \
		--methods bicubic,lanczos,realesrgan-animevideov3,tiny --json docs/eval/eval_x4.json --plots docs/eval
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bikes carphone_pristine --scale 4 --frames 24 \
		--methods $(TINY_SETTINGS) --json docs/eval/tiny_settings.json
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bigbuckbunny --crop 640x360 --scale 4 --frames 24 \
		--methods $(TINY_SETTINGS) --json docs/eval/tiny_settings_bigbuckbunny.json

# Efficiency study of docs/RESULTS.md (patch-wise vs full-frame cost).
bench: $(STAMP)
	$(VENV)/bin/patchvsr bench --json docs/bench/bench.json --plots docs/bench --threads 1 --clock cpu

# End-to-end speed of the default, its settings and the peers on one 320x180 video x4 (docs/RESULTS.md).
speed: $(STAMP)
	$(PY) -m patchvsr.eval.realesrgan fetch
	$(VENV)/bin/patchvsr bench --speed --json docs/bench/speed.json

clean:
	rm -rf $(VENV) demo out
