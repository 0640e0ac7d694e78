#!/usr/bin/env bash
# Install clipcurate with every extra (models: torch/open_clip for scoring and training;
# train: open_clip_torch[training] with the webdataset it pins, for open_clip_train.main;
# dataflow: Beam's GCP client; test: pytest, img2dataset; worldwide: wordfreq, pythainlp, jieba, janome;
# safety: tldextract, alt-profanity-check, OpenCV, NudeNet; pdq: pdqhash), plus Debian's WordNet data files
# (used by the MetaCLIP metadata builder) and chromium (report test) when apt-get is available
# and we are root.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q -e ".[test,models,dataflow,train,worldwide,safety]"
# pdqhash has no wheel (it builds Meta's C++ with the compiler): without one, PDQ tests are skipped
python -m pip install -q -e ".[pdq]" || echo "warning: could not build pdqhash; PDQ hash lists will be unavailable" >&2
if [ ! -f /usr/share/wordnet/data.noun ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wordnet-base >/dev/null) \
    || echo "warning: could not install wordnet-base; WordNet metadata tests will be skipped" >&2
fi
# Debian's chromium: the report test opens report.html in a real headless browser
if ! command -v chromium >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null) \
    || echo "warning: could not install chromium; the headless-browser report test will be skipped" >&2
fi
