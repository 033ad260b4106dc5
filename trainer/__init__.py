"""GPT-2 training for the workbench, nanoGPT-style: `python trainer/train.py --help`.

config.py (the settings), model.py (the flat parameter layout and init), weights.py (llm.c and
Hugging Face weight files), data.py (token shards and the loader), tokenizer.py, prepro.py,
engine.py (the Engine interface and the PyTorch engine), checkpoint.py, logger.py, train.py.
"""
