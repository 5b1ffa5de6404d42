# mk/chaos.mk - the chaos test (tests/chaos/chaos.c): two redlockd on three
# masters, client processes on hot resources, one master faulted at a time;
# fails on any overlap of critical sections.
#
#   make chaos         CHAOS_SECONDS (default 60)
#   make chaos-smoke   20 seconds (CI)

CHAOS_SECONDS ?= 60

$(BUILD)/chaos: $(BUILD)/obj/tests/chaos/chaos.o $(HARNESS_OBJ) $(BUILD)/libredlock.a
	$(CC) $(LDFLAGS) -o $@ $^

.PHONY: chaos chaos-smoke
chaos: $(BUILD)/chaos $(BUILD)/redlockd
	REDLOCKD_BIN=$(BUILD)/redlockd CHAOS_SECONDS=$(CHAOS_SECONDS) $(BUILD)/chaos
chaos-smoke: $(BUILD)/chaos $(BUILD)/redlockd
	REDLOCKD_BIN=$(BUILD)/redlockd CHAOS_SECONDS=20 $(BUILD)/chaos
