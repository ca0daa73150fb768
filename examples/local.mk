# Examples: built out of tree by CI (see .ci/run), shipped in the tarball.
EXTRA_DIST += examples/plugin-skeleton/skeleton.c \
	examples/plugin-skeleton/Makefile \
	examples/plugin-skeleton/README.md
