# mk/examples.mk - the seed libraries' jobs through redlockd (examples/), built
# for tests/integration/check_examples.c.

$(BUILD)/examples/seeds: $(BUILD)/obj/examples/seeds.o $(BUILD)/libredlock.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^

EXTRA_TEST_BIN += $(BUILD)/examples/seeds
