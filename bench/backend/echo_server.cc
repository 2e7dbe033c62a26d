// Bench upstream for the grpc_guard benchmarks: a generic gRPC server that
// answers every method, on plaintext HTTP/2 (h2c), with the request message
// echoed back and status OK.  No .proto: messages stay raw ByteBuffers.
//
//   echo_server PORT [THREADS] [COUNT_FILE]
//
// It listens on 127.0.0.1:PORT.  Each thread drives its own completion
// queue.  On SIGUSR1 the number of RPCs answered so far is written to
// COUNT_FILE (atomically, via a rename), so that the bench can check that
// every request of a load run really reached the upstream.
//
// The RPC is handled as a bidi stream so that the server reads the client's
// half-close before it replies: a reply sent before the request END_STREAM
// makes the server reset the stream, which is exactly what breaks the
// connections nginx keeps alive.

#include <grpcpp/grpcpp.h>
#include <grpcpp/generic/async_generic_service.h>

#include <absl/synchronization/mutex.h>

#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

// Number of calls kept posted per completion queue, so that a burst of new
// streams does not wait for the matching RequestCall of each one.
constexpr int kPendingCalls = 256;

std::atomic<unsigned long long> g_answered{0};

class Call {
 public:
  Call(grpc::AsyncGenericService* svc, grpc::ServerCompletionQueue* cq)
      : svc_(svc), cq_(cq), stream_(&ctx_) {
    svc_->RequestCall(&ctx_, &stream_, cq_, cq_, this);
  }

  // Called with the result of the operation this call was waiting for.
  void Proceed(bool ok) {
    switch (state_) {
      case State::kRequested:
        if (!ok) {  // server shutting down
          delete this;
          return;
        }
        new Call(svc_, cq_);  // keep the number of posted calls constant
        state_ = State::kReading;
        stream_.Read(&in_, this);
        return;

      case State::kReading:
        if (ok) {  // one more message: keep the last one as the reply
          reply_ = std::move(in_);
          have_reply_ = true;
          in_.Clear();
          stream_.Read(&in_, this);
          return;
        }
        // half-close from the client (or the stream went away)
        state_ = State::kFinishing;
        g_answered.fetch_add(1, std::memory_order_relaxed);
        if (have_reply_) {
          stream_.WriteAndFinish(reply_, grpc::WriteOptions(),
                                 grpc::Status::OK, this);
        } else {
          stream_.Finish(grpc::Status::OK, this);
        }
        return;

      case State::kFinishing:
        delete this;
        return;
    }
  }

 private:
  enum class State { kRequested, kReading, kFinishing };

  grpc::AsyncGenericService* svc_;
  grpc::ServerCompletionQueue* cq_;
  grpc::GenericServerContext ctx_;
  grpc::GenericServerAsyncReaderWriter stream_;
  grpc::ByteBuffer in_;
  grpc::ByteBuffer reply_;
  bool have_reply_ = false;
  State state_ = State::kRequested;
};

void Serve(grpc::AsyncGenericService* svc, grpc::ServerCompletionQueue* cq) {
  for (int i = 0; i < kPendingCalls; i++) {
    new Call(svc, cq);
  }
  void* tag;
  bool ok;
  while (cq->Next(&tag, &ok)) {
    static_cast<Call*>(tag)->Proceed(ok);
  }
}

// Waits for SIGUSR1 (blocked in every thread) and writes the counter.
void CountReporter(sigset_t set, std::string path) {
  std::string tmp = path + ".tmp";
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) {
      return;
    }
    FILE* f = std::fopen(tmp.c_str(), "w");
    if (f == nullptr) {
      continue;
    }
    std::fprintf(f, "%llu\n", g_answered.load());
    std::fclose(f);
    std::rename(tmp.c_str(), path.c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s PORT [THREADS] [COUNT_FILE]\n", argv[0]);
    return 2;
  }
  int port = std::atoi(argv[1]);
  int threads = argc > 2 ? std::atoi(argv[2]) : 1;
  std::string count_file = argc > 3 ? argv[3] : "";
  if (port <= 0 || port > 65535 || threads < 1 || threads > 64) {
    std::fprintf(stderr, "echo_server: bad port or thread count\n");
    return 2;
  }

  // Debian's abseil is built with mutex deadlock detection on, which walks a
  // lock graph on every gRPC mutex operation: a few percent of the
  // server's CPU that a benchmark upstream does not need.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  // Block SIGUSR1 before gRPC starts any thread, so that only the reporter
  // thread ever receives it.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
  std::thread reporter;
  if (!count_file.empty()) {
    reporter = std::thread(CountReporter, usr1, count_file);
    reporter.detach();
  }

  std::string listen = "127.0.0.1:" + std::to_string(port);
  grpc::AsyncGenericService svc;
  grpc::ServerBuilder builder;
  int bound = 0;
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &bound);
  builder.RegisterAsyncGenericService(&svc);
  // nginx opens one upstream connection per in-flight RPC; allow plenty.
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  // No BDP probing: it sends PINGs that the front nginx has to answer,
  // which would be counted as proxy cost.
  if (std::getenv("ECHO_BDP_PROBE") == nullptr) {
    builder.AddChannelArgument(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  }

  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> cqs;
  for (int i = 0; i < threads; i++) {
    cqs.emplace_back(builder.AddCompletionQueue());
  }

  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || bound == 0) {
    std::fprintf(stderr, "echo_server: cannot listen on %s\n", listen.c_str());
    return 1;
  }
  std::printf("echo_server: listening on %s, %d thread(s)\n", listen.c_str(),
              threads);
  std::fflush(stdout);

  std::vector<std::thread> workers;
  for (int i = 0; i < threads; i++) {
    workers.emplace_back(Serve, &svc, cqs[i].get());
  }
  // Runs until killed: the bench scripts stop it with SIGTERM.
  for (auto& t : workers) {
    t.join();
  }
  return 0;
}
