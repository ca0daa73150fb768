# docs: manual pages.
dist_man_MANS += docs/qube.1
