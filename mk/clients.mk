# mk/clients.mk - tests of the single-file Python and Node clients
# (client-lib/python/redlock_client/, client-lib/node/redlock-client.js) against
# a real redlockd and three real redis-server per suite, each client installed
# as its package (pip wheel into a temp venv, npm pack) and type-checked.
#
#   make test-clients          both suites; ends with "P passed, F failed"
#   make test-clients-python   pip-installed package: mypy --strict, then python3 -m unittest
#                              (client-lib/python/test_redlock_client.py)
#   make test-clients-node     node --test (client-lib/node/test.js)
#
# Needs python3 (3.9+) and nodejs (18+), and what installs and type-checks the
# packages: sh scripts/deps.sh test (python3-venv, -setuptools, -wheel, -mypy, npm, tsc).
# Environment: REDIS_SERVER_BIN, PYTHON, NODE, CLIENT_TEST_TIMEOUT (see scripts/test-clients.sh).

.PHONY: test-clients test-clients-python test-clients-node

test-clients: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh python node

test-clients-python: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh python

test-clients-node: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh node
