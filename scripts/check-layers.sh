#!/usr/bin/env bash
# Fails when a source file under src/ includes a header of a layer above its own (the layers of
# docs/ARCHITECTURE.md: tools -> serve -> generate/tokenizer -> model -> exec -> runtime ->
# base; io -> model; golden -> model). Run by the build (target check_layers).
#   scripts/check-layers.sh [SRC_DIR]
set -euo pipefail
src=${1:-$(dirname "$0")/../src}
declare -A allowed=(
  [base]="base"
  [runtime]="runtime base"
  [exec]="exec runtime base"
  [model]="model exec runtime base"
  [io]="io model exec runtime base"
  [golden]="golden model exec runtime base"
  [tokenizer]="tokenizer base"
  [generate]="generate tokenizer model exec runtime base"
  [serve]="serve generate tokenizer io model exec runtime base"
)
status=0
while IFS= read -r file; do
  layer=${file#"$src"/}
  layer=${layer%%/*}
  if [ -z "${allowed[$layer]+x}" ]; then
    echo "check-layers: $file: folder '$layer' is not a known layer (add it to scripts/check-layers.sh)" >&2
    status=1
    continue
  fi
  while IFS= read -r inc; do
    target=${inc%%/*}
    # Above exec/, only the seam itself (exec/*.h): never an executor's own files.
    if [ "$layer" != exec ] && [[ "$inc" == exec/*/* ]]; then
      echo "check-layers: $file includes \"$inc\": layer '$layer' may include only exec/*.h (the executor seam), not an executor's files" >&2
      status=1
    fi
    case " ${allowed[$layer]} " in
      *" $target "*) ;;
      *) echo "check-layers: $file includes \"$inc\": layer '$layer' may include only: ${allowed[$layer]}" >&2
         status=1 ;;
    esac
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\/[^"]*\)".*/\1/p' "$file")
done < <(find "$src" -name '*.h' -o -name '*.cc' | sort)
# The model names no executor's types.
if grep -rn "cpu::" "$src/model" >&2; then
  echo "check-layers: src/model names cpu:: (above): the model talks to executors through exec/executor.h only" >&2
  status=1
fi
exit $status
