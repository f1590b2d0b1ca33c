#!/usr/bin/env bash
# Regenerates every figure into results/figures/. Not written yet.
echo "run_all.sh: the experiments are not implemented yet (see README.md, section Status)" >&2
exit 2
