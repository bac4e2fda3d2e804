# Shortcuts for ./dev (which works without make on a fresh machine).
.PHONY: setup demo test lab-up lab-down
setup demo test lab-up lab-down:
	./dev $@
