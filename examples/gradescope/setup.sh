#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image (as root, on Ubuntu),
# with this folder's files in /autograder/source: among them a symgrad wheel, made with
#   pip wheel --no-deps -w examples/gradescope .
set -eu
apt-get install -y bubblewrap python3 python3-pip python3-venv
python3 -m venv /opt/symgrad
/opt/symgrad/bin/pip install /autograder/source/symgrad-*.whl
ln -sf /opt/symgrad/bin/symgrad /usr/local/bin/symgrad
