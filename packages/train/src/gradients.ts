// tfjs-core registers no gradient functions by itself (the `@tensorflow/tfjs` bundle does it); training needs
// them. Importing this module once, for its side effect, registers all of tfjs-core's gradients.
import "@tensorflow/tfjs-core/dist/register_all_gradients.js";
