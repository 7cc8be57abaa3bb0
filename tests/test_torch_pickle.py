"""Reading torch.save files without torch, on fixtures written by real PyTorch 2.13 (tools/make_torch_fixtures.py)
in both layouts: the values are known by formula."""
import os
import pickle
import zipfile

import numpy as np
import pytest

from lucidtl.errors import WeightsError
from lucidtl.models.torch_pickle import read_state_dict

DATA = os.path.join(os.path.dirname(__file__), "data")


@pytest.mark.parametrize("name", ["torch_zip.pth", "torch_legacy.pth"])
def test_real_torch_files(name):
    sd = read_state_dict(os.path.join(DATA, name))
    assert list(sd) == ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                        "1.num_batches_tracked", "shared.whole", "shared.view", "transposed", "half", "bfloat"]
    w = sd["0.weight"]
    assert w.dtype == np.float32 and w.shape == (3, 2, 3, 3)
    np.testing.assert_array_equal(w, np.arange(54, dtype=np.float32).reshape(3, 2, 3, 3) / np.float32(10))
    np.testing.assert_array_equal(sd["1.weight"], [1.0, 2.0, -1.0])
    np.testing.assert_array_equal(sd["1.running_var"], [4.0, 5.0, 6.0])
    assert sd["1.num_batches_tracked"].shape == () and sd["1.num_batches_tracked"].dtype == np.int64
    assert sd["shared.whole"].dtype == np.float64
    np.testing.assert_array_equal(sd["shared.view"], np.arange(5.0, 11.0).reshape(2, 3))  # storage offset 5
    np.testing.assert_array_equal(sd["transposed"], np.arange(12.0).reshape(3, 4).T)  # strides (1, 4)
    assert sd["half"].dtype == np.float16 and sd["half"].tolist() == [0.5, -2.0]
    assert sd["bfloat"].dtype == np.float32 and sd["bfloat"].tolist() == [1.5, -3.0]


def test_wrapped_and_data_parallel_state_dicts(tmp_path):
    import inception_reference as ref

    arrays = {"module.a.weight": np.ones((2, 2), np.float32)}
    path = ref.write_torch_zip(tmp_path / "x.pth", arrays)
    assert list(read_state_dict(path)) == ["a.weight"]


def test_refuses_objects_and_garbage(tmp_path):
    evil = tmp_path / "evil.pth"
    evil.write_bytes(pickle.dumps(print, protocol=2))  # a legacy-looking stream naming a global
    with pytest.raises(WeightsError, match="pickles a (__builtin__|builtins).print, not a state dict"):
        read_state_dict(evil)
    (tmp_path / "text.pth").write_text("hello")
    with pytest.raises(WeightsError, match="cannot read .*text.pth as a PyTorch state dict"):
        read_state_dict(tmp_path / "text.pth")
    with zipfile.ZipFile(tmp_path / "z.pth", "w") as z:
        z.writestr("a/other.txt", "x")
    with pytest.raises(WeightsError, match="without data.pkl"):
        read_state_dict(tmp_path / "z.pth")
