/* lethe: command-line entry point. */
#include <stdio.h>
#include <string.h>

#include "lethe/app.h"

int main(int argc, char **argv) { return lt_main(argc, argv); }
