// The class names of the built-in labelled data sets, in label order.
#pragma once
#include <string>
#include <vector>

namespace ddpm {

// "fashion-mnist": its ten garment names; "mnist": the digits "0".."9"; "cifar10": its ten names;
// empty for any other data set (image folders name their classes after their subfolders).
std::vector<std::string> builtin_class_names(const std::string& dataset);

}  // namespace ddpm
