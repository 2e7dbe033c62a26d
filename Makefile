# ngx_http_grpc_guard_module
#
#   make              build objs/ngx_http_grpc_guard_module.so
#   make test         install what is missing, build, run the whole suite
#   make demo         build and run the demo (Redis, backend, nginx, calls)
#   make bench        benchmarks against bare grpc_pass, same run
#   make test-asan    the suite against nginx built with ASan and UBSan
#   make test-valgrind  the suite with nginx under valgrind memcheck
#   make soak         200k mixed RPCs through one worker, everything on, RSS
#                     must stay flat (make soak SOAK_RPCS=1000000: a million)
#   make fuzz         every libFuzzer target of fuzz/ for FUZZ_SECONDS (60) each

MODULE = objs/ngx_http_grpc_guard_module.so
SRCS = $(wildcard src/*.c src/*.h) config
PROVE_JOBS ?= 2
FUZZ_SECONDS ?= 60

export PERL5LIB := $(CURDIR)/t/lib$(if $(PERL5LIB),:$(PERL5LIB))

.PHONY: all build deps test demo bench test-asan test-valgrind soak \
        fuzz style clean

all: $(MODULE)

build: $(MODULE)

$(MODULE): $(SRCS) ci/build.sh
	ci/build.sh

deps:
	ci/install-deps.sh

test: deps
	ci/style.sh
	ci/build.sh
	ci/test.sh

demo: deps
	ci/build.sh
	ci/demo.sh

bench: deps
	ci/build.sh
	bench/run.sh

test-asan: deps
	ci/test-asan.sh

test-valgrind: deps
	ci/build.sh
	ci/test-valgrind.sh

soak: deps
	ci/build.sh
	ci/soak.sh

fuzz: deps
	FUZZ_SECONDS=$(FUZZ_SECONDS) ci/fuzz.sh

style:
	ci/style.sh

clean:
	rm -rf build objs t/servroot fuzz/build
