// Subcommands of the `loopfast` tool.
#ifndef LOOPFAST_TOOLS_COMMANDS_H_
#define LOOPFAST_TOOLS_COMMANDS_H_

namespace loopfast::tool {

int RunCommand(int argc, char **argv);
int BenchCommand(int argc, char **argv);
int CaptureCommand(int argc, char **argv);
int StatCommand(int argc, char **argv);
int DoctorCommand(int argc, char **argv);
int ServiceCommand(int argc, char **argv);

}  // namespace loopfast::tool

#endif  // LOOPFAST_TOOLS_COMMANDS_H_
