/* "conferenced passwd USERNAME [--data DIR | --config FILE]": sets an agent's password in the
 * store while no server runs on it (a running server locks its store), and ends that agent's
 * sessions. The new password comes from CONFERENCED_NEW_PASSWORD or one line of standard input.
 * Called from main() before anything else starts. */
#ifndef CONFERENCED_PASSWD_H
#define CONFERENCED_PASSWD_H

/* Main thread, alone. argv[1] is "passwd". Returns the process exit status. */
int passwd_command(int argc, char **argv);

#endif
