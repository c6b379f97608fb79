#!/usr/bin/python3
"""Writes the tiny ONNX models the inference tests serve (Triton repository layout), with Debian's
python3-onnx. They are committed; run this again only to change them:

    /usr/bin/python3 tools/make-test-models.py test/fixtures/models
"""
import os
import sys

import onnx
from onnx import TensorProto, helper

# A 5-D float tensor with every dimension free: [N, C, D, H, W].
def volume(name):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", "C", "D", "H", "W"])


def save(repository, model_name, graph, config):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], producer_name="clara-dicom tests")
    model.ir_version = 7  # readable by every onnxruntime since 1.6
    onnx.checker.check_model(model)
    folder = os.path.join(repository, model_name, "1")
    os.makedirs(folder, exist_ok=True)
    onnx.save(model, os.path.join(folder, "model.onnx"))
    if config:
        with open(os.path.join(repository, model_name, "config.pbtxt"), "w") as f:
            f.write(config)


def main(repository):
    # doubler: logits = 2 * image, with a Triton config naming the tensors and their dims.
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    save(repository, "doubler",
         helper.make_graph([helper.make_node("Mul", ["image", "two"], ["logits"])], "doubler",
                           [volume("image")], [volume("logits")], initializer=[two]),
         'name: "doubler"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
         'input [\n  {\n    name: "image"\n    data_type: TYPE_FP32\n    dims: [ -1, 1, -1, -1, -1 ]\n  }\n]\n'
         'output [\n  {\n    name: "logits"\n    data_type: TYPE_FP32\n    dims: [ -1, 1, -1, -1, -1 ]\n  }\n]\n'
         '# the embedded runtime ignores what it does not need\ninstance_group [ { kind: KIND_CPU, count: 1 } ]\n')
    # identity: no config.pbtxt, so the tensor names come from the ONNX file itself.
    save(repository, "identity",
         helper.make_graph([helper.make_node("Identity", ["input"], ["output"])], "identity", [volume("input")], [volume("output")]),
         None)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "test/fixtures/models")
