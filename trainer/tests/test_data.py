"""Token shards, the data loader, the tokenizer from a local file, and prepro on the offline data."""
import numpy as np
import pytest
import torch

from harness.errors import UserError
from trainer import prepro, tokenizer
from trainer.data import DataLoader, read_shard, write_shard


def test_shard_round_trip_and_header(tmp_path):
    tokens = np.array([0, 1, 50256, 65535, 7])
    write_shard(tmp_path / "s.bin", tokens)
    header = np.fromfile(tmp_path / "s.bin", dtype="<i4", count=256)
    assert list(header[:3]) == [20240520, 1, 5]
    assert np.array_equal(read_shard(tmp_path / "s.bin"), tokens)
    (tmp_path / "bad.bin").write_bytes(b"\1" * 1100)
    with pytest.raises(UserError, match="not a token shard"):
        read_shard(tmp_path / "bad.bin")
    with pytest.raises(ValueError):
        write_shard(tmp_path / "big.bin", [70000])
    assert not (tmp_path / "big.bin").exists()


def test_loader_yields_shifted_batches_across_shards(tmp_path):
    write_shard(tmp_path / "d_000.bin", np.arange(0, 30))
    write_shard(tmp_path / "d_001.bin", np.arange(100, 120))
    loader = DataLoader(str(tmp_path / "d_*.bin"), B=2, T=4)
    assert loader.num_batches == 3 + 2
    x, y = loader.next_batch()
    assert x.dtype == torch.int64 and x.shape == (2, 4)
    assert x.tolist() == [[0, 1, 2, 3], [4, 5, 6, 7]] and y.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]
    starts = [loader.next_batch()[0][0, 0].item() for _ in range(5)]
    assert starts == [8, 16, 100, 108, 0]  # 24 + 9 > 30: next shard; then around again


def test_loader_position_saves_and_restores(shards):
    loader = DataLoader(shards["train"], B=2, T=8)
    for _ in range(3):
        loader.next_batch()
    state = loader.state()
    expected = [loader.next_batch() for _ in range(4)]
    other = DataLoader(shards["train"], B=2, T=8)
    other.load_state(state)
    for (x1, y1), (x2, y2) in zip(expected, (other.next_batch() for _ in range(4))):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)


def test_missing_data_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(UserError, match="python trainer/prepro.py tinyshakespeare"):
        DataLoader(str(tmp_path / "nothing_*.bin"), 1, 4)
    write_shard(tmp_path / "short.bin", np.arange(5))
    with pytest.raises(UserError, match="fewer than one batch"):
        DataLoader(str(tmp_path / "short.bin"), 2, 4)


def test_tokenizer_offline_from_the_local_file(shared_vocab, monkeypatch):
    enc = tokenizer.get_encoding(str(shared_vocab))
    assert enc.encode("Hello world") == [15496, 995]
    assert enc.encode_ordinary("First Citizen:\nBefore we proceed") == [5962, 22307, 25, 198, 8421, 356, 5120]
    assert enc.encode("<|endoftext|>", allowed_special="all") == [50256]
    assert enc.n_vocab == 50257
    monkeypatch.setenv(tokenizer.ENV_VAR, str(shared_vocab))
    assert tokenizer.get_encoding().encode("Hello world") == [15496, 995]


def test_tokenizer_falls_back_to_the_shared_file_then_explains(shared_vocab, monkeypatch, tmp_path):
    import tiktoken

    def offline(name):
        raise ConnectionError("no network")

    monkeypatch.delenv(tokenizer.ENV_VAR, raising=False)
    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    monkeypatch.setattr(tokenizer, "SHARED_VOCAB", shared_vocab)
    assert tokenizer.get_encoding().encode("Hello world") == [15496, 995]
    monkeypatch.setattr(tokenizer, "SHARED_VOCAB", tmp_path / "absent.tiktoken")
    with pytest.raises(UserError, match="--vocab"):
        tokenizer.get_encoding()
    with pytest.raises(UserError, match="no GPT-2 vocabulary file"):
        tokenizer.get_encoding(str(tmp_path / "absent.tiktoken"))


def test_prepro_tinyshakespeare_offline(shared_vocab, shared_text, tmp_path, monkeypatch, capsys):
    def no_network(*args, **kwargs):
        raise OSError("offline test")

    monkeypatch.setattr(prepro.urllib.request, "urlopen", no_network)
    monkeypatch.setattr(prepro, "SHARED_TINYSHAKESPEARE", shared_text)
    rc = prepro.main(["tinyshakespeare", "--vocab", str(shared_vocab), "--out-dir", str(tmp_path)])
    assert rc == 0
    assert "download failed" in capsys.readouterr().out
    val = read_shard(tmp_path / "tiny_shakespeare_val.bin")
    train = read_shard(tmp_path / "tiny_shakespeare_train.bin")
    assert len(val) == 32768
    assert abs(len(train) - 305_260) < 1000  # llm.c reports 305,260
    assert val[0] == 50256 and val[1:3].tolist() == [5962, 22307]  # <|endoftext|>First Citizen
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny_shakespeare_train.bin", "tiny_shakespeare_val.bin"]


def test_prepro_any_local_text(shared_vocab, tmp_path):
    text = "\n\n".join(f"Section {i}: some words to tokenize here." for i in range(200))
    (tmp_path / "notes.txt").write_text(text)
    rc = prepro.main(["--input", str(tmp_path / "notes.txt"), "--vocab", str(shared_vocab),
                      "--out-dir", str(tmp_path / "out"), "--val-tokens", "100"])
    assert rc == 0
    assert len(read_shard(tmp_path / "out" / "notes_val.bin")) == 100
    assert (read_shard(tmp_path / "out" / "notes_train.bin") == 50256).sum() >= 190  # one per section


def test_prepro_bad_input_exits_2(tmp_path, capsys):
    assert prepro.main([]) == 2
    assert prepro.main(["--input", str(tmp_path / "missing.txt")]) == 2
    assert "no input file" in capsys.readouterr().err
