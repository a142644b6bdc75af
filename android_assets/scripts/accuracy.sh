#!/system/bin/sh
# harness accuracy pass (one cell): run benchmark_model once per eval input, then concatenate
# the raw outputs in input order into OUT/all.bin so the harness pulls them in one transfer.
#
# usage: sh accuracy.sh BIN OUT INPUT_DIR COUNT INPUT_NAME INPUT_NAME_ESCAPED SHAPE -- FLAGS...
#   BIN      benchmark_model on the device
#   OUT      output folder (recreated)
#   INPUT_DIR holds 0.raw .. COUNT-1.raw (raw input tensors)
#   INPUT_NAME / INPUT_NAME_ESCAPED  the input tensor name, and with ':' written '::'
#   SHAPE    input shape, e.g. 1,256,256,3
#   FLAGS    common benchmark_model flags (graph, delegate, threads, counts, kernel cache)
# Prints "harness-status I EXIT" per input; each input's log is OUT/I.log.
# Every path arrives as an argument: the script itself names no device path.

BIN="$1"; OUT="$2"; IN="$3"; COUNT="$4"; NAME="$5"; VNAME="$6"; SHAPE="$7"
shift 7
[ "$1" = "--" ] && shift
rm -rf "$OUT" && mkdir -p "$OUT" || exit 90
i=0
while [ "$i" -lt "$COUNT" ]; do
  "$BIN" "$@" --input_layer="$NAME" --input_layer_shape="$SHAPE" \
    --input_layer_value_files="$VNAME:$IN/$i.raw" --output_filepath="$OUT/$i.raw" \
    > "$OUT/$i.log" 2>&1
  echo "harness-status $i $?"
  i=$((i + 1))
done
i=0
: > "$OUT/all.bin"
while [ "$i" -lt "$COUNT" ]; do
  [ -f "$OUT/$i.raw" ] && cat "$OUT/$i.raw" >> "$OUT/all.bin"
  i=$((i + 1))
done
