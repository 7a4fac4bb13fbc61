// PCRE2 for 8-bit strings, from Debian's libpcre2-dev. The code unit width must be chosen
// before the header is read.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
