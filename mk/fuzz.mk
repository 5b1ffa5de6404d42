# mk/fuzz.mk - libFuzzer targets (clang) for request framing and parsing, reply
# parsing and formatting, config loading, and Redis replies read into the
# pooled reply objects (checked against hiredis' own), and a master answering
# arbitrary bytes to the daemon's real pool over loopback (fuzz_master).
#
#   make fuzz        each target for FUZZ_SECONDS (default 60) from the seed corpus
#   make fuzz-smoke  each target for 10 s (CI)
#
# Targets build into $(BUILD)/fuzz/ with ASan + UBSan; corpora grow in
# $(BUILD)/fuzz/corpus-<target>, never in the checked-in tests/fuzz/corpus/.

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_FLAGS    = -std=c11 -D_GNU_SOURCE -g -O1 -fsanitize=fuzzer,address,undefined -Iprotocol -Idaemon
FUZZ_TARGETS  = $(BUILD)/fuzz/fuzz_request $(BUILD)/fuzz/fuzz_reply $(BUILD)/fuzz/fuzz_config \
                $(BUILD)/fuzz/fuzz_redis_reply $(BUILD)/fuzz/fuzz_master

$(BUILD)/fuzz/fuzz_request: tests/fuzz/fuzz_request.c protocol/proto.c protocol/proto.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_request.c protocol/proto.c
$(BUILD)/fuzz/fuzz_reply: tests/fuzz/fuzz_reply.c protocol/proto.c protocol/proto.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_reply.c protocol/proto.c
$(BUILD)/fuzz/fuzz_config: tests/fuzz/fuzz_config.c daemon/config.c daemon/config.h daemon/log.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ tests/fuzz/fuzz_config.c daemon/config.c daemon/log.c $(shell pkg-config --libs inih)

$(BUILD)/fuzz/fuzz_redis_reply: tests/fuzz/fuzz_redis_reply.c daemon/reply_pool.c daemon/reply_pool.h \
                                tests/lib/reply_tree.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Itests/lib -o $@ tests/fuzz/fuzz_redis_reply.c daemon/reply_pool.c $(shell pkg-config --libs hiredis)

FUZZ_MASTER_SRC = tests/fuzz/fuzz_master.c daemon/reply_pool.c daemon/memstore.c daemon/table.c \
                  daemon/util.c daemon/log.c protocol/proto.c
$(BUILD)/fuzz/fuzz_master: $(FUZZ_MASTER_SRC) daemon/redis_pool.c daemon/redis_pool.h daemon/reply_pool.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(FUZZ_MASTER_SRC) $(shell pkg-config --cflags --libs hiredis libevent)

.PHONY: fuzz fuzz-smoke
fuzz: $(FUZZ_TARGETS)
	BUILD=$(BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) sh scripts/fuzz.sh
fuzz-smoke: $(FUZZ_TARGETS)
	BUILD=$(BUILD) FUZZ_SECONDS=10 sh scripts/fuzz.sh
