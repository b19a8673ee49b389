#!/usr/bin/env bash
# Regenerate the fonts the reports ship (dataward/templates/fonts/): DejaVu Sans, Bold and
# Sans Mono from Debian's fonts-dejavu-core, subset to the scripts and symbols a report
# uses so the package stays small. Needs fonts-dejavu-core and fontTools (in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
src=${DEJAVU_DIR:-/usr/share/fonts/truetype/dejavu}
out=dataward/templates/fonts
# Latin (with Latin-1 and Extended-A/B), Greek, Cyrillic, punctuation, currency, letter-like
# symbols, arrows, mathematical operators, box drawing, geometric shapes, check marks
unicodes="U+0020-007E,U+00A0-024F,U+0370-03FF,U+0400-04FF,U+2000-206F,U+20A0-20BF,U+2100-214F"
unicodes+=",U+2190-21FF,U+2200-22FF,U+2500-257F,U+25A0-25FF,U+2713-2717,U+FFFD"
for f in DejaVuSans DejaVuSans-Bold DejaVuSansMono; do
  .venv/bin/pyftsubset "$src/$f.ttf" --unicodes="$unicodes" --layout-features='*' --no-hinting \
    --output-file="$out/$f.ttf"
done
ls -l "$out"
