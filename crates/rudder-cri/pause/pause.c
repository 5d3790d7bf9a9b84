/* The pod sandbox's PID 1 ("pause"): holds the pod's namespaces, reaps
 * zombies, exits on SIGTERM or SIGINT. Built static by build.rs so the
 * pause image needs nothing else. */
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_term(int s) { (void)s; _exit(0); }
static void on_chld(int s) { (void)s; while (waitpid(-1, NULL, WNOHANG) > 0) {} }

int main(void) {
  struct sigaction a = {0};
  a.sa_handler = on_term;
  sigaction(SIGTERM, &a, NULL);
  sigaction(SIGINT, &a, NULL);
  a.sa_handler = on_chld;
  a.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &a, NULL);
  for (;;) pause();
}
