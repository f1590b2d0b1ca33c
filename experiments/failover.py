"""Main job: the failover experiment. Not written yet; this placeholder says so."""
import sys

if __name__ == "__main__":
    print("experiments/failover.py is not implemented yet: see README.md, section Status.", file=sys.stderr)
    sys.exit(2)
