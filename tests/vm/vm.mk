# The metainit VM: a Debian disk image booted by qemu with init=/sbin/metainit
# (tests/vm/README.md). Included by the main Makefile.

.PHONY: vm-image vm vm-test

VM_ENV = METAINIT_BIN=$(CURDIR)/$(BIN)

# The image is cached under $(METAINIT_CACHE)/vm (default /var/cache/metainit)
# and rebuilt when its recipe, the partitions' trees or bin/metainit change.
vm-image: build
	$(VM_ENV) tests/vm/image.sh

# Boots the image on this terminal (serial console on stdio).
vm: build
	$(VM_ENV) tests/vm/run.sh

# Boots it headless and checks it end to end: about 3 minutes under TCG.
vm-test: build
	img=$$($(VM_ENV) tests/vm/image.sh) && \
		$(VM_ENV) METAINIT_VM_IMAGE=$$img $(GO) test -count=1 -timeout 30m -v -run 'TestVM$$' ./tests/vm/

# make test runs it after the other tests.
test: vm-test
