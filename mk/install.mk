# mk/install.mk - `make install` and `make uninstall`, honouring PREFIX (default
# /usr/local) and DESTDIR (staging root for packagers and tests); plus
# `make check-install` (tests/integration/check_install.sh) and `make verify-units`
# (systemd-analyze verify and security on the installed units).
#
#   make install                          # into /usr/local, config in /etc/redlockd
#   make install PREFIX=/usr DESTDIR=/tmp/stage
#   make install PREFIX=$HOME/.local SYSCONFDIR=$HOME/.local/etc   # unprivileged
#
# Every directory below may be overridden on the command line. SYSCONFDIR is /etc
# whatever PREFIX is, because /etc/redlockd/redlockd.ini is redlockd's built-in
# default (-c); the systemd unit passes -c with the installed path anyway.
# An existing redlockd.ini is never overwritten: the new example goes next to it
# as redlockd.ini.example.

BINDIR         ?= $(PREFIX)/bin
SBINDIR        ?= $(PREFIX)/sbin
LIBDIR         ?= $(PREFIX)/lib
INCLUDEDIR     ?= $(PREFIX)/include
PKGCONFIGDIR   ?= $(LIBDIR)/pkgconfig
MANDIR         ?= $(PREFIX)/share/man
SYSCONFDIR     ?= /etc
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# systemd-sysusers reads /usr/lib/sysusers.d and /etc/sysusers.d only.
SYSUSERSDIR    ?= $(if $(filter /usr,$(PREFIX)),/usr/lib/sysusers.d,$(SYSCONFDIR)/sysusers.d)
EXAMPLE_CONF   ?= conf/redlockd.ini
INSTALL        ?= install
# Run after a root install or uninstall without DESTDIR (LDCONFIG=: to skip).
LDCONFIG       ?= ldconfig

INST_SONAME = libredlock.so.$(SONAME_MAJOR)
INST_CONFDIR = $(SYSCONFDIR)/redlockd
# Paths in the .pc file relative to ${prefix} where they are under PREFIX, so
# `pkg-config --define-prefix` can relocate it.
INST_PC_LIBDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(LIBDIR))
INST_PC_INCLUDEDIR = $(patsubst $(PREFIX)/%,$${prefix}/%,$(INCLUDEDIR))
# The units name /usr/local/sbin/redlockd and /etc/redlockd/ (the defaults):
# rewrite them to where this install puts things.
INST_UNIT_SED = -e 's|/usr/local/sbin/redlockd|$(SBINDIR)/redlockd|g' -e 's|/etc/redlockd/|$(INST_CONFDIR)/|g'
INST_MAN = man/redlock.1 man/redlockd.ini.5 man/redlockd.8
INST_UNITS = systemd/redlockd.service systemd/redlockd.socket

.PHONY: install uninstall check-install verify-units

install: $(BUILD)/redlockd $(BUILD)/redlock $(BUILD)/libredlock.a $(BUILD)/$(INST_SONAME) \
         client-lib/redlock.h $(INST_MAN) $(INST_UNITS) $(EXAMPLE_CONF)
	$(INSTALL) -d "$(DESTDIR)$(BINDIR)" "$(DESTDIR)$(SBINDIR)" "$(DESTDIR)$(LIBDIR)" \
	  "$(DESTDIR)$(INCLUDEDIR)" "$(DESTDIR)$(PKGCONFIGDIR)" "$(DESTDIR)$(MANDIR)/man1" \
	  "$(DESTDIR)$(MANDIR)/man5" "$(DESTDIR)$(MANDIR)/man8" "$(DESTDIR)$(INST_CONFDIR)" \
	  "$(DESTDIR)$(SYSTEMDUNITDIR)" "$(DESTDIR)$(SYSUSERSDIR)"
	$(INSTALL) -m 0755 $(BUILD)/redlock "$(DESTDIR)$(BINDIR)/redlock"
	$(INSTALL) -m 0755 $(BUILD)/redlockd "$(DESTDIR)$(SBINDIR)/redlockd"
	$(INSTALL) -m 0644 $(BUILD)/libredlock.a "$(DESTDIR)$(LIBDIR)/libredlock.a"
	$(INSTALL) -m 0755 $(BUILD)/$(INST_SONAME) "$(DESTDIR)$(LIBDIR)/$(INST_SONAME)"
	ln -sf $(INST_SONAME) "$(DESTDIR)$(LIBDIR)/libredlock.so"
	$(INSTALL) -m 0644 client-lib/redlock.h "$(DESTDIR)$(INCLUDEDIR)/redlock.h"
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(INST_PC_LIBDIR)' 'includedir=$(INST_PC_INCLUDEDIR)' '' \
	  'Name: redlock' 'Description: Blocking C client of redlockd, the Redlock lock manager' \
	  'Version: $(VERSION)' 'Libs: -L$${libdir} -lredlock' 'Cflags: -I$${includedir}' \
	  >"$(DESTDIR)$(PKGCONFIGDIR)/redlock.pc"
	chmod 0644 "$(DESTDIR)$(PKGCONFIGDIR)/redlock.pc"
	$(INSTALL) -m 0644 man/redlock.1 "$(DESTDIR)$(MANDIR)/man1/redlock.1"
	$(INSTALL) -m 0644 man/redlockd.ini.5 "$(DESTDIR)$(MANDIR)/man5/redlockd.ini.5"
	$(INSTALL) -m 0644 man/redlockd.8 "$(DESTDIR)$(MANDIR)/man8/redlockd.8"
	$(INSTALL) -m 0644 systemd/redlockd.sysusers "$(DESTDIR)$(SYSUSERSDIR)/redlockd.conf"
	for u in $(INST_UNITS); do \
	  sed $(INST_UNIT_SED) "$$u" >"$(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/}" && \
	  chmod 0644 "$(DESTDIR)$(SYSTEMDUNITDIR)/$${u#systemd/}" || exit 1; \
	done
	@if [ -e "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini" ] && \
	    ! cmp -s $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; then \
	  echo "install: keeping $(DESTDIR)$(INST_CONFDIR)/redlockd.ini; example installed as redlockd.ini.example"; \
	  echo $(INSTALL) -m 0644 $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini.example"; \
	  $(INSTALL) -m 0644 $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini.example"; \
	else \
	  echo $(INSTALL) -m 0644 $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; \
	  $(INSTALL) -m 0644 $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; \
	fi
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null; then \
	  echo $(LDCONFIG); $(LDCONFIG); fi
	@# The unit runs as User=redlockd: create the user and group now (as root).
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v systemd-sysusers >/dev/null; then \
	  echo systemd-sysusers "$(SYSUSERSDIR)/redlockd.conf"; systemd-sysusers "$(SYSUSERSDIR)/redlockd.conf"; fi

# Removes what install put there; a redlockd.ini that differs from the example
# (edited by the administrator) is kept.
uninstall:
	rm -f "$(DESTDIR)$(BINDIR)/redlock" "$(DESTDIR)$(SBINDIR)/redlockd" \
	  "$(DESTDIR)$(LIBDIR)/libredlock.a" "$(DESTDIR)$(LIBDIR)/$(INST_SONAME)" \
	  "$(DESTDIR)$(LIBDIR)/libredlock.so" "$(DESTDIR)$(INCLUDEDIR)/redlock.h" \
	  "$(DESTDIR)$(PKGCONFIGDIR)/redlock.pc" "$(DESTDIR)$(MANDIR)/man1/redlock.1" \
	  "$(DESTDIR)$(MANDIR)/man5/redlockd.ini.5" "$(DESTDIR)$(MANDIR)/man8/redlockd.8" \
	  "$(DESTDIR)$(SYSTEMDUNITDIR)/redlockd.service" "$(DESTDIR)$(SYSTEMDUNITDIR)/redlockd.socket" \
	  "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini.example" "$(DESTDIR)$(SYSUSERSDIR)/redlockd.conf"
	@if [ -e "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini" ]; then \
	  if cmp -s $(EXAMPLE_CONF) "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; then \
	    echo rm -f "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; rm -f "$(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; \
	  else echo "uninstall: keeping the edited $(DESTDIR)$(INST_CONFDIR)/redlockd.ini"; fi; \
	fi
	-rmdir "$(DESTDIR)$(INST_CONFDIR)" 2>/dev/null || true
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v $(LDCONFIG) >/dev/null; then \
	  echo $(LDCONFIG); $(LDCONFIG); fi

# Install into a temporary DESTDIR and build and run a program against the
# installed header, pkg-config file and libraries. Prints "1 passed, 0 failed".
check-install: $(BUILD)/redlockd $(BUILD)/redlock $(BUILD)/libredlock.a $(BUILD)/$(INST_SONAME)
	BUILD=$(BUILD) MAKE="$(MAKE)" sh tests/integration/check_install.sh

# systemd-analyze verify on the units as installed into a scratch prefix
# (verify wants the ExecStart binary and the man pages to exist, so the units
# name the scratch paths), then the offline security score of the service.
INST_VERIFY_ROOT = $(CURDIR)/$(BUILD)/verify-root
verify-units: $(BUILD)/redlockd $(BUILD)/redlock $(BUILD)/libredlock.a $(BUILD)/$(INST_SONAME)
	rm -rf "$(INST_VERIFY_ROOT)"
	$(MAKE) --no-print-directory -s install PREFIX="$(INST_VERIFY_ROOT)/usr" \
	  SYSCONFDIR="$(INST_VERIFY_ROOT)/etc" DESTDIR= LDCONFIG=: >/dev/null
	MANPATH="$(INST_VERIFY_ROOT)/usr/share/man" systemd-analyze verify \
	  "$(INST_VERIFY_ROOT)/usr/lib/systemd/system/redlockd.socket" \
	  "$(INST_VERIFY_ROOT)/usr/lib/systemd/system/redlockd.service"
	systemd-analyze security --offline=yes --no-pager \
	  "$(INST_VERIFY_ROOT)/usr/lib/systemd/system/redlockd.service" | tail -n 1
	rm -rf "$(INST_VERIFY_ROOT)"
