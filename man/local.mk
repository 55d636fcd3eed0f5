## man/local.mk - the manual pages (included by the top Makefile.am).
## hakmem(3): the hak_* API and the overridden malloc family;
## hakmem(7): the tiers, the chunk registry, configure and HAKMEM_* options.
dist_man_MANS = man/hakmem.3 man/hakmem.7
