# mk/deb.mk - `make deb`: the Debian packages (binary only, unsigned) built
# with dpkg-buildpackage from a copy of the tracked files in $(BUILD)/deb/,
# where the .deb files land; `make check-deb` also runs lintian on them and
# installs them, then smoke-tests the installed daemon (as root; CI does).

DEB_DIR = $(BUILD)/deb
DEB_SRC = $(DEB_DIR)/redlockd-$(VERSION)

.PHONY: deb deb-deps check-deb

deb-deps:
	@sh scripts/deps.sh deb

deb: deb-deps
	rm -rf "$(DEB_DIR)"
	mkdir -p "$(DEB_SRC)"
	git ls-files -co --exclude-standard | grep -v '^debian/.*\.deb$$' | \
	  tar -cf - -T - | tar -xf - -C "$(DEB_SRC)"
	cd "$(DEB_SRC)" && dpkg-buildpackage -b -us -uc
	@ls -1 "$(DEB_DIR)"/*.deb

check-deb: deb
	sh tests/integration/check_deb.sh "$(DEB_DIR)"
