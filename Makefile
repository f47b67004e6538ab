# Every target bootstraps its own .venv from scratch (only the package registries are needed).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test data data-v1 data-v3 train train-lite ship bench speed eval eval-crf clean

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

# Training data of the next model (collection v2: photos from Debian packages + scikit-image with synthetic
# camera motion, and clips of real footage): 6144 + 64 clips, 5.5 GB in data/, about 14 minutes on one core.
data: $(STAMP)
	$(VENV)/bin/patchvsr data --out data --clips 6144

# Training data of lite's piece 4 (collection v3: v2 plus three more real videos; 30 % of the training clips from
# footage, 48 validation clips from the held-out last fifth of every video): data_v3/, about 20 minutes on one core.
data-v3: $(STAMP)
	$(VENV)/bin/patchvsr data --out data_v3 --clips 6144 --collection v3 --footage-share 0.3 --footage-val-clips 48

# Training data of the first tiny model (collection v1, the wallpaper packages only): ~2 GB in data_v1/.
data-v1: $(STAMP)
	$(VENV)/bin/patchvsr data --out data_v1 --collection v1

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
	test -f data_v1/manifest.json || $(MAKE) data-v1
	$(VENV)/bin/patchvsr train base --data data_v1 --out runs/tiny_base --steps $(BASE_STEPS) --threads 1 \
		--lr 5e-4 --checkpoint-minutes 5 $(RESUME)
	$(VENV)/bin/patchvsr train adapter --data data_v1 --out runs/tiny_adapter --base runs/tiny_base/model \
		--steps $(ADAPTER_STEPS) --decay-steps $(ADAPTER_DECAY) --threads 1 --lr 6e-4 --warmup-steps 50 \
		--checkpoint-minutes 8 --val-every 150 $(RESUME)
	$(VENV)/bin/patchvsr train adapter --data data_v1 --out runs/tiny_temporal --base runs/tiny_base/model \
		--init runs/tiny_adapter/model --temporal-weight 1 --steps $(TEMPORAL_STEPS) \
		--decay-steps $(TEMPORAL_DECAY) --threads 1 --lr 2e-4 --warmup-steps 20 --checkpoint-minutes 8 \
		--val-every 250 $(RESUME)

# The next embedded model, `lite` (stem and head on the LR grid, degradation-strength condition; see
# docs/lite_model_notes.md), trained in resumable pieces. The chain: stage 1 (990 steps, 12 minutes on one core);
# stage 2 (3317 steps at --realistic-share 0.5, about an hour); the fine-tune from it with soft sources and
# without LR-only blur (6200 steps, the last 3000 decaying; 1.8 h); piece 3, from the fine-tune's model with the
# head grown to 4 residual blocks, more H.264 (veryfast or medium) and grainy sources (4800 steps, the last 1600
# decaying; about 2 h on two cores); piece 4, the same recipe on collection v3 (30 % real footage; 3000 steps, the
# last 1000 decaying; about 50 minutes on two cores); piece 5, from piece 4's model with half the realistic share
# (0.3; 2000 steps, the last 800 decaying; about 40 minutes); piece 6, from piece 5's model at x4 only
# (--scale-range 4,4; 1500 steps, the last 600 decaying; 44 minutes on one core, fp32); piece 7, the same recipe
# again from piece 6's model (72 minutes on one core of a slower Zen 3, beside its ablation); piece 8, from piece
# 7's model with every LR made by antialiased bicubic and 90 % clean conditions (1500 steps, the last 600 decaying;
# 42 minutes on one core of a Xeon with AMX, bf16, beside its ablation): the shipped `lite`. Each run continues
# from its committed small state (float16 weights, bfloat16 moments, step and data position, the stage-1 base) in
# training/lite/ and writes it back at the end of a piece, so a piece may run on a fresh machine:
# `make train-lite && git add training/lite`. A finished run only exports its model again.
LITE_FINETUNE := training/lite/finetune
LITE_PIECE3 := training/lite/piece3
LITE_PIECE4 := training/lite/piece4
LITE_PIECE5 := training/lite/piece5
LITE_PIECE6 := training/lite/piece6a
LITE_PIECE7 := training/lite/piece7
LITE_PIECE8 := training/lite/piece8
# The recipe of pieces 6 to 8 (x4 only, fp32, one core; piece 8 changes three of its settings).
LITE_X4 := --head-blocks 4 --realistic-share 0.3 --soft-share 0.2 --grain-share 0.15 --lr-blur-share 0 \
	--lr-noise-share 0.3 --jpeg-share 0.2 --h264-share 0.6 --h264-presets veryfast,medium --scale-range 4,4 \
	--precision fp32 --lr 2e-4 --steps 1500 --decay-steps 600 --threads 1 --checkpoint-minutes 8 --val-every 250
train-lite: $(STAMP)
	test -f $(LITE_PIECE4)/state.json || test -f data/manifest.json || $(MAKE) data
	test -f $(LITE_FINETUNE)/state.json || test -f runs/lite_base/model/config.json || \
		$(VENV)/bin/patchvsr train base --data data --out runs/lite_base --preset lite --steps 990 --threads 1 \
		--lr 1e-3 --checkpoint-minutes 4
	test -f $(LITE_FINETUNE)/state.json || test -f runs/lite_adapter/model/config.json || \
		$(VENV)/bin/patchvsr train adapter --data data --out runs/lite_adapter --preset lite \
		--base runs/lite_base/model --realistic-share 0.5 --steps 3317 --threads 1 --checkpoint-minutes 8 \
		--val-every 250 --carry training/lite/adapter
	test -f $(LITE_PIECE3)/state.json || $(VENV)/bin/patchvsr train adapter --data data --out runs/lite_finetune \
		--preset lite --base runs/lite_base/model --init runs/lite_adapter/model --realistic-share 0.5 \
		--soft-share 0.25 --lr-blur-share 0 --steps 6200 --decay-steps 3000 --threads 1 --checkpoint-minutes 8 \
		--val-every 250 --carry $(LITE_FINETUNE)
	test -f $(LITE_PIECE4)/state.json || $(VENV)/bin/patchvsr train adapter --data data --out runs/lite_p3 \
		--preset lite --base runs/lite_base/model --init runs/lite_finetune/model --head-blocks 4 \
		--realistic-share 0.6 --soft-share 0.2 --grain-share 0.15 --lr-blur-share 0 --lr-noise-share 0.3 \
		--jpeg-share 0.2 --h264-share 0.6 --h264-presets veryfast,medium --lr 4e-4 --steps 4800 --decay-steps 1600 \
		--threads 2 --checkpoint-minutes 8 --val-every 250 --carry $(LITE_PIECE3)
	test -f data_v3/manifest.json || $(MAKE) data-v3
	test -f $(LITE_PIECE5)/state.json || $(VENV)/bin/patchvsr train adapter --data data_v3 --out runs/lite_p4 \
		--preset lite --base runs/lite_base/model --init runs/lite_p3/model --head-blocks 4 \
		--realistic-share 0.6 --soft-share 0.2 --grain-share 0.15 --lr-blur-share 0 --lr-noise-share 0.3 \
		--jpeg-share 0.2 --h264-share 0.6 --h264-presets veryfast,medium --lr 3e-4 --steps 3000 --decay-steps 1000 \
		--threads 2 --checkpoint-minutes 8 --val-every 250 --carry $(LITE_PIECE4)
	test -f $(LITE_PIECE6)/state.json || $(VENV)/bin/patchvsr train adapter --data data_v3 --out runs/lite_p5 \
		--preset lite --base runs/lite_base/model \
		--init runs/lite_p4/model --head-blocks 4 --realistic-share 0.3 --soft-share 0.2 --grain-share 0.15 \
		--lr-blur-share 0 --lr-noise-share 0.3 --jpeg-share 0.2 --h264-share 0.6 --h264-presets veryfast,medium \
		--lr 2e-4 --steps 2000 --decay-steps 800 --threads 2 --checkpoint-minutes 8 --val-every 250 \
		--carry $(LITE_PIECE5)
	test -f $(LITE_PIECE7)/state.json || $(VENV)/bin/patchvsr train adapter --data data_v3 --out runs/lite_p6a \
		--preset lite --base runs/lite_base/model --init runs/lite_p5/model $(LITE_X4) --carry $(LITE_PIECE6)
	test -f $(LITE_PIECE8)/state.json || $(VENV)/bin/patchvsr train adapter --data data_v3 --out runs/lite_p7 \
		--preset lite --base runs/lite_base/model --init runs/lite_p6a/model $(LITE_X4) --carry $(LITE_PIECE7)
	# piece 8: the evaluation's kernel (antialiased bicubic) for every LR, 90 % clean conditions; bf16 (AMX)
	$(VENV)/bin/patchvsr train adapter --data data_v3 --out runs/lite_p8 --preset lite --base runs/lite_base/model \
		--init runs/lite_p7/model $(LITE_X4) --precision bf16 --bicubic-share 1.0 --clean-share 0.9 \
		--carry $(LITE_PIECE8)

# Copy the trained models into the package (float16, < 30 MB in all) as `--model tiny` and `--model lite` (the
# default), with their model card notes.
ship: $(STAMP)
	$(PY) -m patchvsr.train.ship runs/tiny_temporal/model --notes docs/tiny_model_notes.md
	$(PY) -m patchvsr.train.ship runs/lite_p8/model --name lite --notes docs/lite_model_notes.md \
		--fidelity-only "its multi-step detail mode was never trained and loses 1 to 6 dB against bicubic (public set, --steps 4, docs/lite_model_notes.md); --model tiny has a usable one"

# Quality tables of docs/RESULTS.md (public evaluation set, x4): all methods on the first 60 frames, then the
# tiny model's sampling settings on 24 frames (bigbuckbunny: its 640x360 centre). About 40 minutes on 2 cores.
TINY_SETTINGS := bicubic,lanczos,tiny,tiny:temporal_radius=0,tiny:clip_frames=4:temporal_radius=2,tiny:steps=4,tiny:steps=4:t0=0.5
eval: $(STAMP)
	$(VENV)/bin/patchvsr fetch realesrgan
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bigbuckbunny bikes carphone_pristine --scale 4 --frames 60 \
		--methods bicubic,lanczos,realesrgan-animevideov3,tiny --json docs/eval/eval_x4.json --plots docs/eval
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bikes carphone_pristine --scale 4 --frames 24 \
		--methods $(TINY_SETTINGS) --json docs/eval/tiny_settings.json
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bigbuckbunny --crop 640x360 --scale 4 --frames 24 \
		--methods $(TINY_SETTINGS) --json docs/eval/tiny_settings_bigbuckbunny.json

# The compressed-input table: the LR written as H.264 CRF 30 (libx264 medium, 4:2:0), first 24 frames, with
# crop grids in docs/eval/crf30. About 5 minutes on one core.
eval-crf: $(STAMP)
	$(VENV)/bin/patchvsr fetch realesrgan
	OMP_NUM_THREADS=1 $(VENV)/bin/patchvsr eval bigbuckbunny bikes carphone_pristine --scale 4 --frames 24 \
		--lr-crf 30 --methods bicubic,tiny,realesrgan-animevideov3 --json docs/eval/eval_x4_crf30_24frames.json \
		--plots docs/eval/crf30

# Efficiency study of docs/RESULTS.md (patch-wise vs full-frame cost).
bench: $(STAMP)
	$(VENV)/bin/patchvsr bench --json docs/bench/bench.json --plots docs/bench --threads 1 --clock cpu

# End-to-end speed of the default, its settings and the peers on one 320x180 video x4 (docs/RESULTS.md).
speed: $(STAMP)
	$(VENV)/bin/patchvsr fetch realesrgan
	$(VENV)/bin/patchvsr bench --speed --json docs/bench/speed.json

clean:
	rm -rf $(VENV) demo out
