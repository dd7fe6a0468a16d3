# mk/python.mk: Python distributions (included by the top Makefile).
#   make wheel        a manylinux wheel in bindings/python/dist (cargo zigbuild + auditwheel)
#   make sdist        an sdist carrying the crate, in bindings/python/dist
#   make test-python-dist  both, installed into fresh venvs and used
.PHONY: wheel sdist test-python-dist

wheel:
	$(MAKE) -C bindings/python wheel

sdist:
	$(MAKE) -C bindings/python sdist

test-python-dist:
	$(MAKE) -C bindings/python test-dist
