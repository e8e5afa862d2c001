# The two commands of the README's Quick start, and a few conveniences around them.
.PHONY: demo test bootstrap bench clean

# Set up (Debian packages + .venv) and run the kiosk on its embedded default: every device emulated,
# a local city hall on SQLite.
demo: bootstrap
	.venv/bin/kiosk demo --config config/demo.toml

# Set up and run the whole test suite; the fixtures start and stop every service the tests need.
test: bootstrap
	scripts/run-tests

bootstrap:
	scripts/bootstrap

bench: bootstrap
	for b in bench/*.py; do .venv/bin/python $$b || exit 1; done

clean:
	rm -rf .venv *.egg-info build dist var
