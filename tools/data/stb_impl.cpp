// The one translation unit that compiles stb_image and stb_image_write (Debian libstb-dev headers).
// CMake builds this file with warnings off: the code is third-party and not ours to fix.
#define STB_IMAGE_IMPLEMENTATION
#define STBI_ONLY_PNG  // the image-folder loader's PNGs; JPEGs go to libjpeg-turbo (jpeg_decode.h)
#include <stb/stb_image.h>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#include <stb/stb_image_write.h>
