# mk/clients.mk - tests of the single-file Python and Node clients
# (client-lib/python/redlock_client.py, client-lib/node/redlock-client.js)
# against a real redlockd and three real redis-server per suite.
#
#   make test-clients          both suites; ends with "P passed, F failed"
#   make test-clients-python   python3 -m unittest (client-lib/python/test_redlock_client.py)
#   make test-clients-node     node --test (client-lib/node/test.js)
#
# Needs python3 (3.9+) and nodejs (18+); Debian: apt-get install python3 nodejs.
# Environment: REDIS_SERVER_BIN, PYTHON, NODE, CLIENT_TEST_TIMEOUT (see scripts/test-clients.sh).

.PHONY: test-clients test-clients-python test-clients-node

test-clients: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh python node

test-clients-python: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh python

test-clients-node: $(BUILD)/redlockd
	BUILD=$(BUILD) sh scripts/test-clients.sh node
